from socket import *

tcp_cli_socket = socket(AF_INET, SOCK_STREAM)

# 连接服务器
serveraddr = ("192.168.61.114", 6666)
tcp_cli_socket.connect(serveraddr)

while True:
    # 提示用户输入数据
    senddata = input("请输入你要发送的内容: ").encode("gbk")
    if len(senddata) > 0:
        tcp_cli_socket.send(senddata)
    else:
        break

    # 接收对方发送过来的数据
    recvdata = tcp_cli_socket.recv(1024)
    print(recvdata.decode("gbk"))

# 关闭套接字
tcp_cli_socket.close()
