from socket import *

tcp_server_socket = socket(AF_INET, SOCK_STREAM)

# 绑定本地信息
address = ("192.168.61.114", 6666)
tcp_server_socket.bind(address)

# 设置监听套接字
tcp_server_socket.listen(5)

while True:
    # 如果有新的客户端连接服务器，那么产生一个新的套接字为这个客户端服务
    newsocket, clientaddr = tcp_server_socket.accept()

    while True:
        # 接收对方发送的数据
        recvddata = newsocket.recv(1024)

        if len(recvddata) > 0:
            print(recvddata.decode("gbk"))
        else:
            break

        # 发送一些数据到客户端
        senddata = input("请输入发送给客户端的信息").encode("gbk")
        newsocket.send(senddata)

    newsocket.close()
