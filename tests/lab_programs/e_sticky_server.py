from socket import *

tcp_server_socket = socket(AF_INET, SOCK_STREAM)

# 绑定本地信息
address = ("192.168.61.114", 7777)
tcp_server_socket.bind(address)

# 设置监听套接字
tcp_server_socket.listen(5)

newsocket, clientaddr = tcp_server_socket.accept()

data1 = newsocket.recv(2)
data2 = newsocket.recv(10)

print('====>', data1.decode("gbk"))
print('====>', data2.decode("gbk"))

newsocket.close()
